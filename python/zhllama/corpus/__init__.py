"""Corpora: reading documents, ``tokenize-corpus``, joining worker parts, the tokenized
dataset readers and ``stats``."""
