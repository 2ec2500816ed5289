# Hash-grid radiance field on the built-in procedural scene (no data, no network):
#   python tools/train.py configs/nerf/demo.py
# From a cold start (fresh Numba cache) on an idle 2-core AMD EPYC, step 250 (25.3 dB over
# the 20 test views) comes 68 s after start-up (benchmarks/README.md, "Radiance fields: quality").
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/procedural.py',
    '../_base_/models/nerf_instant_ngp.py',
]
data = dict(type='RayPipeline', rays_per_step=2048)
renderer = dict(train_sample_budget=32768)
model = dict(
    field=dict(log2_table_size=16, finest_resolution=512),
    grid=dict(resolution=64),
    aabb=[-2.0, -2.0, -2.0, 2.0, 2.0, 2.0],
    render_step_size=0.01,
)
max_steps = 1500
train_cfg = dict(max_steps=max_steps, val_interval=500)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['encoding', 'mlp'], max_steps=max_steps,
         final_ratio=0.03),
]
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=500))
custom_hooks = [dict(type='VisualizationHook', max_images=4), dict(type='TestOutputHook')]
