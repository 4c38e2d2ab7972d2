// Package model holds Central's data types (machines, boot images,
// deployments, agents, events, consumed required deployments) and the
// normalisation of the identifiers they carry (MAC, SMBIOS GUID,
// architecture). It is shared by the decision rules, the stores, the API and
// the client, so it must import only the standard library.
package model
