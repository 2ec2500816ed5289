# Runtime defaults shared by every method config.
default_scope = 'nerfreg'
device = 'auto'  # 'auto' = CUDA when available, else CPU
seed = 0
deterministic = False
work_dir = None  # tools/train.py uses work_dirs/<config name> when unset
resume = False  # True = latest checkpoint of work_dir; or a path
load_from = None
launcher = 'none'
log_level = 'INFO'
# custom_imports = dict(imports=['my_pkg.my_module'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1000, max_keep_ckpts=3, save_last=True),
    sync_check=dict(type='SyncCheckHook', interval=100),  # distributed runs only
)
custom_hooks = []
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])

# Real-capture components (docs/real_captures.md): each section is handed to the model, which
# builds it from MODELS when `enabled`; switch on with e.g. --cfg-options camera_opt.enabled=True
camera_opt = dict(  # learnt SE(3) corrections of the training cameras
    type='CameraOptimizer', enabled=False, mode='SO3xR3', lr=1e-4, final_ratio=0.01,
    decay_steps=10_000, warmup_steps=0, weight_decay=1e-4,
    eval_align=False, align_steps=100, align_lr=5e-3)  # eval_align: psnr_aligned (see docs)
# appearance: eval_mode='nerfw' also reports psnr_nerfw / ssim_nerfw (the NeRF-W protocol:
# a transform fitted on each held-out view's left half, the right half scored)
appearance = dict(  # per-image affine colour transform of the render (identity at test)
    type='AffineAppearance', enabled=False, lr=5e-3, final_ratio=0.1, decay_steps=10_000,
    weight_decay=0.0, center=True, eval_mode='identity', eval_steps=200)
depth_loss = dict(  # inverse-depth L1 at the SfM points each training image observed
    type='SparseDepthLoss', enabled=False, weight=0.001, min_alpha=0.5)
masked_metrics = dict(  # psnr_masked/ssim_masked over the pixels the held-out views' masks keep
    type='MaskedMetrics', enabled=False)
