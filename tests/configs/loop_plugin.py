# The toy run with a plugin's train loop and a plugin's export format, chosen by name.
_base_ = ['./toy.py']
custom_imports = dict(imports=['nerfreg_toy', 'nerfreg_loop_plugin'],
                      allow_failed_imports=False)
train_cfg = dict(_delete_=True, type='EarlyStopTrainLoop', max_steps=400, loss_below=2e-3,
                 patience=3, nan_guard=dict(max_consecutive=5))
val_cfg = dict(split='train')
default_hooks = dict(checkpoint=None)
custom_hooks = [dict(type='FinalExportHook', export_ply=False, run_test=False,
                     exporters=[dict(type='NpzExporter', filename='weights.npz')])]
