"""A GA4GH WES 1.1.0 server over miniwdl runs (`miniwdl-jupyter wes serve`).

`store` keeps the runs (folders under the server's root, read through the runs API), `app` is the
HTTP API, `run_request` checks a submission, `attachments` writes uploads safely, `states` maps
run states to WES states, `auth` maps bearer tokens to users, `client` talks to any WES server. The client side is the `wes` launcher (miniwdl_jupyter/launchers/wes.py).
"""
