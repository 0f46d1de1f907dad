"""ISO 15118 / DIN SPEC 70121 EV-charging protocol stack.

Today this package holds the schema-informed EXI codec (``iso15118.exi``) and its schema
compiler; the per-schema grammars are generated into the ``exi_schemas`` package.
"""

__version__ = "0.1.0"
