"""maskpose.render: cameras and rasterisers (import the submodules; nothing heavy happens here).

- :mod:`maskpose.render.camera` — pinhole intrinsics ``K (B, 3, 3)``, ``project``, crop placement
  (``fit_translation``) and the HMR weak-perspective camera <-> translation conversion.
- :mod:`maskpose.render.zbuffer` — exact z-buffer ``rasterize(vertices, faces, K, size) -> Fragments``
  (``face_index``, ``barycentric``, ``depth``, ``mask``); no gradient; the reference for masks.
- :mod:`maskpose.render.silhouette` — M2S, differentiable silhouettes ``(B, 1, H, W)``:
  ``render_silhouette`` / ``SilhouetteRenderer`` (exact ``"contour"`` mode, or ``"splat"``).
- :mod:`maskpose.render.stick` — differentiable 2D stick figures (capsules).
- :mod:`maskpose.bench.render` — ``maskpose bench render``.
"""
