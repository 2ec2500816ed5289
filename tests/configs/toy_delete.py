_base_ = ['./toy.py']
model = dict(_delete_=True, type='ToyModel')
