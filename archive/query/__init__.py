"""The protocol-neutral query model (PS3.4 C.2.2.2): which attributes can be matched and
returned at each level, how a value matches, and a parsed query. QIDO-RS
(archive.dicomweb.query) and C-FIND (the gateway) parse their own syntax into a
`SearchQuery`; archive.selectors.search runs it."""
