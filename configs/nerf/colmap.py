# Hash-grid radiance field on a COLMAP scene (default: the cup photos beside the repo).
# Unbounded: the mip-NeRF 360 contraction, inner ball = the training cameras' extent.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/colmap.py',
    '../_base_/models/nerf_instant_ngp.py',
]
data = dict(type='RayPipeline', rays_per_step=4096, dataset=dict(downscale=4))
model = dict(
    bounds='contract',
    cone_angle=1 / 256,
    near=0.05,
    background='black',
    eval_background='black',
)
max_steps = 3000
train_cfg = dict(max_steps=max_steps, val_interval=1000)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['encoding', 'mlp'], max_steps=max_steps,
         final_ratio=0.03),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1000))
custom_hooks = [dict(type='VisualizationHook', max_images=2), dict(type='TestOutputHook')]
