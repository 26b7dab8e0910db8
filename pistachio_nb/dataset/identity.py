"""One identity per dataset: every kept image's faces found and embedded, the character found, other people rejected.

The character is the user's anchor photos when given, else the largest group of single-face images whose
faces pass the face model's same-person threshold with one another (when it holds most of them). An image
whose only face is someone else is rejected, its cosine the reason; several faces or none are flagged, not
dropped (a full-body shot may hide the face). Head pose (from the five landmarks) and framing (face height
over image height) make the coverage table: what the dataset lacks, seen before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputDataError, ParamsError
from ..evaluation.faces import Face, FaceEmbedder, load_face_embedder, same_person_threshold
from ..files import read_json, write_json
from .decode import RejectedImage, draft_copy
from .pool import opencv_one_thread, parallel_map

DETECT_SIDE = 640  # the detector's working size; the reduced-scale decode makes big photos cheap
MIN_SCORE = 0.8  # detector confidence a face needs here: real photos' faces score 0.87-0.94, a drawing's false hits mostly less
CACHE = ".faces-cache.json"
FACES_VERSION = 2  # bump when detection changes its results, so cached faces are found again
FACES = "faces.json"  # per written image: face boxes and landmarks as fractions of the picture (for masks)
POSES = ("frontal", "three-quarter", "profile")
FRAMINGS = ("close-up", "medium", "full body")
NO_FACE, SEVERAL = "no_face", "several_faces"


@dataclass
class IdentityResult:
    """The character's identity and how it was found; the model and its same-person threshold."""

    embedder: str
    threshold: float
    reference: np.ndarray | None
    how: str  # "anchors", "largest group" or why there is no character
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """What was checked and decided, in two sentences."""
        if self.embedder == "none":
            return "Face checks are off (face_embedder: none): every image is kept whatever face it shows."
        c = self.counts
        found = f"Faces found in {c['with_face']} of {c['checked']} kept images ({self.embedder}, same-person cosine {self.threshold:g})."
        if self.reference is None:
            return f"{found} No character identity: {self.how}, so nobody was rejected as another person."
        return (f"{found} The character is {self.how}; rejected as another person: {c['other_person']}; flagged: "
                f"{c[SEVERAL]} with several faces, {c[NO_FACE]} with no face.")


def _fractions(face: Face, width: int, height: int) -> dict:
    x, y, w, h = face.box
    return {"vector": [round(float(v), 6) for v in face.vector], "score": round(face.score, 4),
            "box": [x / width, y / height, w / width, h / height],
            "landmarks": [[px / width, py / height] for px, py in face.landmarks]}  # fmt: skip


def detect_faces(embedder: FaceEmbedder, paths: dict[str, Path], cache_dir: Path, spec: str, workers: int) -> dict[str, list[dict]]:
    """Every face of every image (keyed by content hash): unit vector, score, box and landmarks as fractions.

    Cached in `cache_dir` by content hash and model, so a rerun embeds only new images. An embedder that runs
    on one core (sface) is spread over `workers` processes, each loading `spec` once; the others run here.
    """
    fingerprint = f"{embedder.name}:{DETECT_SIDE}:{MIN_SCORE}:{FACES_VERSION}"
    cached = read_json(cache_dir / CACHE) if (cache_dir / CACHE).exists() else {}
    known = cached.get("faces", {}) if cached.get("fingerprint") == fingerprint else {}
    faces = {h: known[h] for h in paths if h in known}
    todo = [(h, p) for h, p in paths.items() if h not in faces]
    _EMBEDDERS[spec] = embedder  # in-process jobs use the loaded model; worker processes load their own
    jobs = [(spec, str(path)) for _, path in todo]
    for (h, _), found in zip(todo, parallel_map(faces_of, jobs, workers if embedder.one_core else 1, "faces", preload=__name__)):
        if isinstance(found, str):
            raise InputDataError(found, fix="rerun 01_dataset")
        faces[h] = found
    write_json(cache_dir / CACHE, {"fingerprint": fingerprint, "faces": {**known, **faces}})
    return faces


_EMBEDDERS: dict[str, FaceEmbedder] = {}


def faces_of(job: tuple[str, str]) -> list[dict] | str:
    """The confident faces of one image as fractions of its size, or the reason it cannot be read (a message,
    not an exception, so a worker's failure names the file). The embedder is loaded once per process."""
    spec, path = job
    if spec not in _EMBEDDERS:  # a worker process: its own model, OpenCV (imported by the load) on one thread
        _EMBEDDERS[spec] = load_face_embedder(spec)
        opencv_one_thread()
    try:
        image = draft_copy(Path(path), DETECT_SIDE)
    except (RejectedImage, OSError) as err:
        return f"{path} cannot be read for the face check ({err})"
    return [_fractions(f, image.width, image.height) for f in _EMBEDDERS[spec].embed_all(image) if f.score >= MIN_SCORE]


def head_pose(landmarks: Sequence[Sequence[float]]) -> str:
    """frontal / three-quarter / profile from how far the nose sits from the eyes' midpoint, in eye distances."""
    (rx, _), (lx, _), (nx, _) = landmarks[:3]
    offset = abs(nx - (rx + lx) / 2) / max(abs(lx - rx), 1e-6)
    return POSES[0] if offset < 0.15 else POSES[1] if offset < 0.5 else POSES[2]


def framing(box: Sequence[float]) -> str:
    """close-up / medium / full body from the face's height as a share of the picture's."""
    return FRAMINGS[0] if box[3] >= 0.3 else FRAMINGS[1] if box[3] >= 0.1 else FRAMINGS[2]


def _unit(vectors: Sequence[np.ndarray]) -> np.ndarray:
    mean = np.mean(vectors, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def largest_group(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the faces that pass the threshold with the face that has the most such neighbours."""
    passes = vectors @ vectors.T >= threshold
    return np.flatnonzero(passes[int(np.argmax(passes.sum(axis=1)))])


def character(single: list[np.ndarray], anchors: list[np.ndarray], threshold: float) -> tuple[np.ndarray | None, str]:
    """The character's unit vector and how it was found: the anchors, or a majority group of single faces."""
    if anchors:
        return _unit(anchors), f"the {len(anchors)} anchor photo{'s' * (len(anchors) > 1)} (face_anchors)"
    if len(single) < 2:
        return None, "fewer than two images show exactly one face"
    group = largest_group(np.stack(single), threshold)
    if 2 * len(group) <= len(single):
        return None, f"no one person holds most single-face images (largest group {len(group)} of {len(single)}); set face_anchors"
    return _unit([single[i] for i in group]), f"the largest group of one face: {len(group)} of {len(single)} single-face images"


def anchor_files(anchors: Sequence[str], source: Path) -> list[Path]:
    """The anchor photos, relative to source_dir unless absolute; each must exist (checked before any work)."""
    files = [p if p.is_absolute() else source / p for p in map(Path, anchors)]
    if missing := [str(f) for f in files if not f.is_file()]:
        raise ParamsError(f"face_anchors: {', '.join(missing)} not found",
                          fix="name photos of the character, relative to source_dir or absolute")  # fmt: skip
    return files


def anchor_vectors(embedder: FaceEmbedder, files: list[Path]) -> list[np.ndarray]:
    """The best face of each anchor photo; a photo without a face is an error naming it."""
    vectors = []
    for f in files:
        found = embedder.embed_all(draft_copy(f, DETECT_SIDE))
        if not found:
            raise InputDataError(f"face_anchors: {f} shows no face the {embedder.name} model can find",
                                 fix="choose a clear photo of the character's face")  # fmt: skip
        vectors.append(max(found, key=lambda x: x.score).vector)
    return vectors


def face_model(spec: str) -> FaceEmbedder | None:
    """The dataset's face model (None for `none`), loaded before any image is read so a missing one stops at once."""
    return None if spec == "none" else load_face_embedder(spec)


def check_identity(rows: list[dict], source: Path, cache_dir: Path, embedder: FaceEmbedder | None,
                   anchors: Sequence[str], spec: str, workers: int) -> IdentityResult:  # fmt: skip
    """Find, embed and judge the faces of the kept rows: adds faces, identity, pose, framing, face_flags;
    rejects (status, reason, kept) a kept image whose one face is another person."""
    if embedder is None:
        return IdentityResult("none", float("nan"), None, "face checks off")
    files = anchor_files(anchors, source)
    threshold = same_person_threshold(embedder)
    kept = [r for r in rows if r["kept"]]
    found = detect_faces(embedder, {r["hash"]: source / r["path"] for r in kept}, cache_dir, spec, workers)
    single = [np.asarray(found[r["hash"]][0]["vector"]) for r in kept if len(found[r["hash"]]) == 1]
    reference, how = character(single, anchor_vectors(embedder, files), threshold)
    counts = {"checked": len(kept), "with_face": 0, "other_person": 0, SEVERAL: 0, NO_FACE: 0}
    for r in kept:
        faces = found[r["hash"]]
        best = max(faces, key=lambda f: f["score"]) if faces else None
        cos = [float(np.asarray(f["vector"]) @ reference) for f in faces] if reference is not None else []
        r.update(faces=len(faces), identity=round(max(cos), 4) if cos else None, face_box=best["box"] if best else None,
                 face_boxes=[f["box"] for f in faces],
                 pose=head_pose(best["landmarks"]) if best and best["landmarks"] else "", framing=framing(best["box"]) if best else "",
                 face_flags=[NO_FACE] if not faces else [SEVERAL] if len(faces) > 1 else [])  # fmt: skip
        counts["with_face"] += bool(faces)
        for flag in r["face_flags"]:
            counts[flag] += 1
        if len(faces) == 1 and cos and cos[0] < threshold:
            counts["other_person"] += 1
            r.update(status="rejected", kept=False,
                     reason=f"another person: face cosine {cos[0]:.3f} to the character, below {embedder.name}'s same-person {threshold:g}")  # fmt: skip
    return IdentityResult(embedder.name, threshold, reference, how, counts)


def faces_file(entries: list[dict], rows: list[dict]) -> dict:
    """faces.json content: per written image, every face box (x, y, w, h as fractions of the upright source picture;
    metadata.jsonl's original size and crop offsets map them into the written image) and the identity cosine."""
    by_hash = {r["hash"]: r for r in rows if r.get("kept")}
    return {e["file_name"]: {"boxes": by_hash[e["hash"]].get("face_boxes", []), "identity": by_hash[e["hash"]].get("identity")}
            for e in entries}  # fmt: skip
