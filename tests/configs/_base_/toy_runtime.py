_base_ = ['../../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['nerfreg_toy'], allow_failed_imports=False)
device = 'cpu'
data = dict(type='ToyRegressionData', n=64, dim=8, batch_size=8)
renderer = dict(type='ToyRenderer')
model = dict(type='ToyModel', dim=8, init_value=0.5)
optimizer = dict(type='ToyOptimizer', lr=0.05)
train_cfg = dict(max_steps=20, val_interval=5)
default_hooks = dict(logger=dict(type='LoggerHook', interval=5),
                     checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2))
