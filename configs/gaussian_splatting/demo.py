# The built-in procedural scene: trains on a fresh machine with no data and no network.
#   python tools/train.py configs/gaussian_splatting/demo.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/procedural.py',
    '../_base_/schedules/gs_short.py',
]
max_steps = 1500
train_cfg = dict(max_steps=max_steps, val_interval=500)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['means'], max_steps=max_steps, final_ratio=0.01),
]
model = dict(background='white')
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=500))
# validation images to the visualizer; at the end: point_cloud.ply + test renders/metrics
custom_hooks = [dict(type='VisualizationHook', max_images=4), dict(type='TestOutputHook'),
                dict(type='FinalExportHook')]
