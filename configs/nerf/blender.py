# Hash-grid radiance field (instant-ngp style) on a NeRF-synthetic (Blender) scene, sized
# for a 2-core CPU. Example (mic at 400x400):
#   python tools/train.py configs/nerf/blender.py \
#       --cfg-options data.data_root=../shared/data/mic data.downscale=2
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/blender.py',
    '../_base_/models/nerf_instant_ngp.py',
]
# random rays across all training images; val/test render whole views (in chunks)
data = dict(type='RayPipeline', rays_per_step=4096)
model = dict(background='random', eval_background='white')
# 5000 steps fit the 20-minute budget of a 2-core CPU: 11.5 min of training for mic at
# 400x400 on an idle 2-core AMD EPYC (AVX2), see benchmarks/README.md for the test PSNR
max_steps = 5000
train_cfg = dict(max_steps=max_steps, val_interval=1000)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['encoding', 'mlp'], max_steps=max_steps,
         final_ratio=0.03),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1000))
# validation renders to the visualizer; test renders + metrics at the end (tools/test.py)
custom_hooks = [dict(type='VisualizationHook', max_images=2)]
