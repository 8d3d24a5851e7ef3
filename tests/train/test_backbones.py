"""Every backbone passes the contract of :mod:`tests.train.backbone_contract`."""

from tests.train.backbone_contract import BackboneContract


class TestSASRec(BackboneContract):
    model = "sasrec"


class TestGRU4Rec(BackboneContract):
    model = "gru4rec"


class TestBERT4Rec(BackboneContract):
    model = "bert4rec"
    layouts = ("windows",)  # masked-item training has no prefix rows
