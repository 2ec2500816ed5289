_base_ = ['./_base_/toy_runtime.py', './_base_/extra.py']
optimizer = dict(lr={{_base_.extra_value}})
copied_list = {{_base_.extra_list}}
