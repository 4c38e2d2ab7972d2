// Package web is Central's administrator page: server-rendered html/template
// pages embedded in the binary (no build step) showing subnets with their
// agents and who served which boots, machines with their deployments and a
// "clear" button for consumed required deployments, deployments, images and
// recent boots. The admin logs in with the admin token, kept in an
// HttpOnly, SameSite=Strict cookie; every form POST also checks Origin.
//
// web uses central/api's Server for its data and actions; it must not
// import a store implementation.
package web
