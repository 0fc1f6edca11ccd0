"""Classification: which service each flow reaches, on what evidence, and how sure.

    >>> from flowscope.classify import load_catalog, classify_many, FlowEvidence
    >>> catalog = load_catalog()                      # built-in data, plus user files if given
    >>> labels = classify_many([FlowEvidence(l4="tcp", resp_ip="157.240.20.53", resp_port=5222,
    ...                                      wa_prologue=True)], catalog)
    >>> labels[0].service, labels[0].evidence, labels[0].confidence
    ('whatsapp.chat', 'wa-prologue', 'high')
"""
from __future__ import annotations

from flowscope.classify.catalog import (AppRule, AsnRule, Catalog, CatalogSource, HostRule, PortRule, PrefixRule,
                                        load_catalog)
from flowscope.classify.classifier import (EVIDENCE_KINDS, NO_EVIDENCE, FlowEvidence, Label, classify, classify_many,
                                           labels_to_columns)
from flowscope.schema import CONFIDENCES, SERVICES

__all__ = ["AppRule", "AsnRule", "CONFIDENCES", "Catalog", "CatalogSource", "EVIDENCE_KINDS",
           "FlowEvidence", "HostRule", "Label", "NO_EVIDENCE", "PortRule", "PrefixRule", "SERVICES",
           "classify", "classify_many", "labels_to_columns", "load_catalog"]
