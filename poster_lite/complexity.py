def complexity(*a, **k): raise NotImplementedError
def size_table(*a, **k): raise NotImplementedError
