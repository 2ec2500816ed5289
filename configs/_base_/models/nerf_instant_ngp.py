# Instant-NGP-style hash-grid radiance field: model, volume renderer, optimizer.
# List this with a dataset base file; the method config sets data.type='RayPipeline'.
model = dict(
    type='InstantNGP',
    field=dict(n_levels=16, n_features=2, log2_table_size=17, base_resolution=16,
               finest_resolution=1024, hidden=64, geo_features=15, color_layers=2,
               sh_degree=3, density_bias=-1.0),
    grid=dict(resolution=128, update_every=16, warmup_steps=256, decay=0.95, threshold=0.01,
              sample_fraction=0.25),
    bounds='aabb',
    aabb=[-1.5, -1.5, -1.5, 1.5, 1.5, 1.5],
    render_step_size=None,  # None: grid diagonal / 1024
    cone_angle=0.0,
    max_samples=1024,
    background='random',
    eval_background='white',
    backend='auto',  # 'cpu' = Numba kernels on CPU tensors, 'torch' = reference / CUDA
)
renderer = dict(type='VolumeRenderer', chunk_size=16384, train_sample_budget=65536)
optimizer = dict(type='FieldOptimizer', lr=1e-2, eps=1e-15, weight_decay=1e-6)
