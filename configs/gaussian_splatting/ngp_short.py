# Short CPU schedule on an instant-ngp transforms.json scene (default: fox at downscale 4,
# 270x480, white background), from random points: the capture has no point cloud.
#   python tools/train.py configs/gaussian_splatting/ngp_short.py
# The schedule, random start and floater control are in schedules/gs_short_random.py
# (sized by arithmetic, not swept on validation views; figures there).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/ngp_fox.py',
    '../_base_/schedules/gs_short_random.py',
]
model = dict(background={{_base_.background}})
default_hooks = dict(checkpoint=dict(interval=1000))
custom_hooks = [
    dict(type='VisualizationHook', max_images=3),
    dict(type='TestOutputHook'),
    dict(type='FinalExportHook'),
]
