"""Reading and writing: cases (NIfTI, DICOM), images, label maps, the output folder (the
contract), its safety, the snapshot, the phantom, BraTS -> nnU-Net."""
