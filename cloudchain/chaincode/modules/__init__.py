"""The built-in chaincode modules."""
