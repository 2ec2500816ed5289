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
