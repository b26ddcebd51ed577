"""The largest PDU the gateways let a peer send. pynetdicom reads a PDU whole into memory
(several copies while it decodes), and a peer told "no limit" sends a large instance as one
PDU of its full size: a 192 MB multiframe took 900 MB. 1 MiB keeps a PDU per association
small while a 512² CT slice still needs only one."""

MAX_PDU = 1 << 20
