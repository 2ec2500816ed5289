# Short CPU schedule on the cup scene at downscale 4 (200x150), every 8th image held out,
# sized for about 10 minutes on a 2-core CPU with the Numba backend.
#   python tools/train.py configs/gaussian_splatting/colmap_short.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/colmap.py',
    '../_base_/schedules/gs_short.py',
]
data = dict(downscale=4)
max_steps = 3000
train_cfg = dict(max_steps=max_steps, val_interval=1000)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['means'], max_steps=max_steps, final_ratio=0.01),
]
