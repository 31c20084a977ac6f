"""HaMeR (Pavlakos et al., "Reconstructing Hands in 3D with Transformers", CVPR 2024), written
for this package: a ViT backbone on a 256x192 hand crop and a transformer-decoder head that
regresses MANO (6D rotations, betas) and a weak-perspective camera, loading a user's HaMeR
checkpoint. Modules: ``config`` (model_config.yaml), ``vit`` (backbone), ``head`` (MANO head),
``mano`` (MANO layer with the reference's buffer names), ``model`` (the whole network),
``checkpoint`` (safe loading), ``preprocess`` (crops as HaMeR makes them), ``camera``
(crop camera -> full-image translation), ``regressor`` (batched inference for the pipeline).
"""
