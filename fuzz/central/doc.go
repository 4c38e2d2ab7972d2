// Package central holds fuzz targets for what Central decodes from the
// network: machine CSV imports, MAC/GUID/architecture strings and
// subnets. Their seed corpora run as normal tests.
package central
