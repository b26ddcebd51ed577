"""DICOM networking pieces the cloud gateway and the on-site edge gateway share."""
