# 3DGS-MCMC on the built-in procedural scene (no data, no network): demo.py with the
# MCMCStrategy and the demo's final Gaussian count as budget.
#   python tools/train.py configs/gaussian_splatting/demo_mcmc.py
_base_ = ['./demo.py']
# The paper starts from scales 0.1x the k-NN distance; log-scales move at most about
# lr=5e-3 per step, so growing back by 10x takes ~460 steps: too much of a short schedule
# (on cup that start covers 22% of the image). Short schedules keep the default scale.
model = dict(init_opacity=0.5, init_scale=1.0)
optimizer = dict(strategy=dict(
    _delete_=True, type='MCMCStrategy', cap_max=25_000, refine_start=150,
    refine_stop=1000, refine_every=50, growth_rate=0.05, min_opacity=0.005,
    noise_lr=5e5, opacity_reg=0.01, scale_reg=0.01))
