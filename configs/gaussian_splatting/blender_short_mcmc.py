# The MCMC twin of blender_short.py: same data (mic at downscale 2, white), same random
# start, steps, refinement window and 100k Gaussian cap, with the MCMCStrategy. Only the
# strategy differs, so the two compare the densification alone (benchmarks/README.md,
# "Quality at fixed step counts").
#   python tools/train.py configs/gaussian_splatting/blender_short_mcmc.py
# The strategy values are the paper's (as in colmap_short_mcmc.py); not swept on mic.
_base_ = ['./blender_short.py']
optimizer = dict(strategy=dict(
    _delete_=True, type='MCMCStrategy', cap_max=100_000, refine_start=150,
    refine_stop=1500, refine_every=50, growth_rate=0.05, min_opacity=0.005,
    noise_lr=5e5, opacity_reg=0.01, scale_reg=0.01))
