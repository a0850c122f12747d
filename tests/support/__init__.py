"""Helpers the tests share: throwaway servers started on loopback and removed afterwards."""
