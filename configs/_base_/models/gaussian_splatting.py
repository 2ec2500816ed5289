# 3D Gaussian Splatting: model, renderer and optimizer with 3DGS densification.
# The strategy intervals below are the 3DGS 30k-step values; schedules/gs_short.py
# includes this file and scales them down for short CPU runs.
model = dict(
    type='GaussianSplatting',
    sh_degree=3,
    sh_degree_interval=1000,   # active SH degree += 1 every this many steps
    init_opacity=0.1,
    init_scale=1.0,            # x RMS distance to the 3 nearest points
    num_random=100_000,        # random init when the scene has no point cloud
    random_extent=1.0,         # half size of the random cube / scene_extent
    max_init_points=None,
    background='black',        # 'white' | 'black' | 'random' | [r, g, b]
    ssim_lambda=0.2,
)
renderer = dict(
    type='GaussianSplatRenderer',
    backend='auto',            # 'auto' | 'torch' | 'cpu' | 'gsplat'
    render_mode='RGB+ED',
    near_plane=0.01,
    far_plane=1e10,
    tile_size=16,
    rasterize_mode='classic',  # 'classic' | 'antialiased' (Mip-Splatting 2D filter)
)
optimizer = dict(
    type='GaussianOptimizer',
    # means lr is multiplied by the scene extent (scale_means_lr=True).
    lr=dict(means=1.6e-4, scales=5e-3, quats=1e-3, opacities=5e-2, sh0=2.5e-3,
            shN=2.5e-3 / 20),
    eps=1e-15,
    strategy=dict(
        type='DefaultStrategy',
        refine_start=500,
        refine_stop=15_000,
        refine_every=100,
        reset_every=3000,
        grow_grad2d=None,      # None: 0.0002, or 0.0008 with absgrad=True
        absgrad=False,         # grow on summed |per-pixel gradients| (AbsGS, gsplat's absgrad)
        grow_scale3d=0.01,     # 3DGS percent_dense (x scene extent): clone below, split above
        prune_opa=0.005,
        prune_scale3d=0.1,     # after the first reset: world size > 0.1 x extent
        prune_scale2d=0.15,    # after the first reset: screen radius > 0.15 x image size
        reset_opacity=0.01,
        cap_max=None,
    ),
)
