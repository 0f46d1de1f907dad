"""Public-key infrastructure for Plug & Charge (ISO 15118-2 and -20).

- `pki.profiles`: the certificate profiles as one table (`PROFILES`, `STANDARDS`), with sources.
- `pki.errors`: one exception hierarchy; each class carries its ISO-2 and ISO-20 ResponseCode.
- `pki.create`: test-PKI generation from the table (`create_pki`, `write_pki`, building blocks).
- `pki.lint`: every departure of a certificate from its profile (`check_profile`).
- `pki.chain`: `verify_chain(leaf, sub_cas, trust_store, at=, standard=, purpose=)`.
- `pki.store`: a trust store on disk, reloadable, with an expiry report.
- `pki.emaid`: eMAID syntax, DIN SPEC 91286 check digit, the contract certificate's eMAID.
- `pki.ocsp`: OCSP requests and answers, cache, policy for missing answers (fetch injected).
- `pki.xmlsig`, `pki.keywrap`: XML signatures over EXI fragments, contract key wrap.
- `pki.commands`: the ``iso15118 pki`` commands.

The cores take time (`at`) and the trust store as arguments; only `pki.store` and
`pki.create.write_pki` touch files and only `pki.commands` reads the clock.
"""
