# Short CPU schedule on a NeRF-synthetic scene (default: mic at downscale 2, 400x400, white
# background), from random points: the scene has no point cloud.
#   python tools/train.py configs/gaussian_splatting/blender_short.py
# The schedule, random start and floater control are in schedules/gs_short_random.py
# (sized by arithmetic, not swept on validation views; figures there).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/blender_mic.py',
    '../_base_/schedules/gs_short_random.py',
]
model = dict(background={{_base_.background}})
default_hooks = dict(checkpoint=dict(interval=1000))
custom_hooks = [
    dict(type='VisualizationHook', max_images=3),
    dict(type='TestOutputHook'),
    dict(type='FinalExportHook'),
]
