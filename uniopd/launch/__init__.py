"""How runs start: one process (`start`), N data-parallel processes (`multiprocess`), and the GPU
sets that `group` and sweep workers hand their runs (`placement`)."""
