# Short CPU-friendly schedule (3000 steps) with densification intervals scaled down.
# It includes the Gaussian Splatting model file (mmengine forbids the same key in two
# bases): list this file INSTEAD of models/gaussian_splatting.py.
_base_ = ['../models/gaussian_splatting.py']

max_steps = 3000
train_cfg = dict(max_steps=max_steps, val_interval=1000)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['means'], max_steps=max_steps, final_ratio=0.01),
]
model = dict(sh_degree_interval=300)
optimizer = dict(
    strategy=dict(refine_start=150, refine_stop=1500, refine_every=50, reset_every=900,
                  cap_max=200_000))
