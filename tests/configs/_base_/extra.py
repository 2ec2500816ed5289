extra_value = 0.07
extra_list = [1, 2]
