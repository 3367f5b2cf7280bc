"""Training with nnU-Net v2: conversion, planning, the 2D and 3D trainers, the chain.

`chain.Chain` runs the whole chain; `commands.train_cli.register` adds `convert` and
`train` to the command line. See docs/TRAINING.md.
"""
