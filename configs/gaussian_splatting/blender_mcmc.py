# 3DGS-MCMC on a NeRF-synthetic (Blender) scene, 30k steps, from random points (the
# paper's point: no SfM needed). blender.py with the MCMCStrategy.
_base_ = ['./blender.py']
model = dict(init_opacity=0.5, init_scale=0.1, num_random=100_000)
optimizer = dict(strategy=dict(
    _delete_=True, type='MCMCStrategy', cap_max=500_000, refine_start=500,
    refine_stop=25_000, refine_every=100, growth_rate=0.05, min_opacity=0.005,
    noise_lr=5e5, opacity_reg=0.01, scale_reg=0.01))
