//! Resource usage (ResourceUsage, ClusterResourceUsage) and Metric endpoints.
