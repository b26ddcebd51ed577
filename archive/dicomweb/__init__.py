"""DICOMweb: QIDO-RS, WADO-RS and STOW-RS under /t/<slug>/dicomweb/."""
