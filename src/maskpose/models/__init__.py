"""maskpose.models"""
