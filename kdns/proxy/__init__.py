"""kdns-proxy: an nftables service proxy laid out like kube-proxy's nftables mode.

Modules: ``model`` (service ports joined with endpoints), ``objects`` (reducers from API JSON),
``names`` (kube-proxy chain names), ``render`` (pure model -> ruleset), ``transaction`` (ruleset
-> ``nft -f -`` text, full and partial), ``conntrack`` (stale UDP flow planning and deletion),
``nft`` (the ``nft`` subprocess), ``syncer`` (coalesced, atomic syncs), ``http`` (/healthz,
/metrics), ``source`` (API watch -> model), ``cli`` (``kdns-proxy``).
"""
