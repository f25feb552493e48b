"""What crosses workers and what is kept for later: the control bus and the audit log.

`control` carries named operations to every worker over the channel layer (the sessions layer
registers the handlers); `audit` records security-relevant moments from plain values and writes
them in bulk; `background` is the transaction those background writes use.
May import `streaming.delivery`, `streaming.wire`, models and settings; never sessions or ops.
"""
