"""modelbus_testing: helpers shared by the tests of every workspace member."""
