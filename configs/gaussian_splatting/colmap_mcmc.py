# 3DGS-MCMC (Kheradmand et al. 2024) on a COLMAP scene, 30k steps: colmap.py with the
# MCMCStrategy (relocation + growth to cap_max, SGLD noise, opacity/scale regularisers).
#   python tools/train.py configs/gaussian_splatting/colmap_mcmc.py
_base_ = ['./colmap.py']
model = dict(init_opacity=0.5, init_scale=0.1)  # the paper's initialisation
optimizer = dict(strategy=dict(
    _delete_=True, type='MCMCStrategy',
    cap_max=1_000_000,     # Gaussian budget (reached by +5% every refine_every steps)
    refine_start=500, refine_stop=25_000, refine_every=100, growth_rate=0.05,
    min_opacity=0.005,     # at or below: relocated onto live Gaussians
    noise_lr=5e5,          # SGLD position noise x means lr / scene extent^2
    opacity_reg=0.01, scale_reg=0.01))  # scale_reg is divided by the scene extent
