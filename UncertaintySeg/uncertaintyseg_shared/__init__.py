"""What the Slicer module and the pipeline share, importable with the standard library
alone.

The Slicer side (`UncertaintySeg.py`, `UncertaintySegLib`) runs in Slicer's Python, which
ships none of the pipeline's dependencies (torch, SimpleITK wheels of our pins,
filelock, tqdm...) until the first Apply installs them; a third-party import on its load
chain keeps the module from appearing at all (slicer-review-3, L1). So the two sides
meet here, and only here: the run options, the errors, the contract's file names and
output sets, the palette, the cohort table's format, the BraTS names, the triage default,
the progress stages and the atomic file writers. Every module of this package imports the
standard library and this package, nothing else (Testing/module/test_load_chain.py
checks, as Slicer loads the module); the pipeline (`uncertaintyseg`) imports these
definitions from here and keeps re-exports at their old paths.
"""
