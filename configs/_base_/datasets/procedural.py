# Built-in ray-traced scene, rendered on first use into ~/.cache/nerfreg/procedural/<hash>
# (or $NERFREG_CACHE_DIR; set data_root to choose the folder). Sized for a 2-core CPU.
data = dict(
    type='DataPipeline',
    batch_size=1,
    image_device='cpu',
    shuffle=True,
    dataset=dict(
        type='ProceduralSceneDataset',
        image_size=128,
        n_train=100,
        n_val=10,
        n_test=20,
        num_points=4000,
        downscale=1,
        background='white',
    ),
)
