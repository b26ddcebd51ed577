"""Corrections: a study's mistyped patient details, a series sent under the wrong patient,
two studies of one patient merged; each a new version of the images' headers, reversible."""
