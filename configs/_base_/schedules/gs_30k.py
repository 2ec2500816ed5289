# 3DGS schedule: 30k steps, means lr decays log-linearly 1.6e-4 -> 1.6e-6 (x extent).
train_cfg = dict(max_steps=30_000, val_interval=7000)
param_scheduler = [
    dict(type='ExponentialDecayLR', groups=['means'], max_steps=30_000, final_ratio=0.01),
]
