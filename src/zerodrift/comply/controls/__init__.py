"""Automated controls, one small module per evidence area.

Every module in this package is imported by
:func:`zerodrift.comply.registry.load_controls`, and each ``@control``
function in it is registered. To add a control, add a module here (or a
function to the module of its area); see docs/comply.md.
"""
