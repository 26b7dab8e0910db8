"""The demo and test world: the ComfyUI imitation and the real-ComfyUI launcher, file servers, demo data.

The demo profile and the tests plug it in; `pistachio_nb` never imports it.
"""
