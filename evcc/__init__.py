"""The EV simulator (EVCC, EV Communication Controller), planned: the vehicle side of a
charging session, used to drive the SECC in end-to-end tests."""
