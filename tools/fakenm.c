/*
** fakenm: plays NetworkManager on a D-Bus bus for the tests of metered
** connections (issue 18): owns org.freedesktop.NetworkManager and answers
** org.freedesktop.DBus.Properties.Get("org.freedesktop.NetworkManager",
** "Metered") with the number given (NMMetered: 0 unknown, 1 yes, 2 no,
** 3 guess yes, 4 guess no). Prints "ready" once it owns the name.
**
**   fakenm METERED      (on $DBUS_SYSTEM_BUS_ADDRESS, or the system bus)
*/
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>

static const char xml[] =
    "<node><interface name='org.freedesktop.NetworkManager'>"
    "<property name='Metered' type='u' access='read'/>"
    "</interface></node>";

static guint32 metered;

static GVariant *get_property(GDBusConnection *c, const gchar *sender, const gchar *path,
                              const gchar *iface, const gchar *name, GError **error, gpointer data)
{
    (void)c, (void)sender, (void)path, (void)iface, (void)error, (void)data;
    return g_str_equal(name, "Metered") ? g_variant_new_uint32(metered) : NULL;
}

static const GDBusInterfaceVTable vtable = {NULL, get_property, NULL, {0}};

static void on_bus(GDBusConnection *c, const gchar *name, gpointer data)
{
    (void)name;
    GDBusNodeInfo *info = data;
    g_dbus_connection_register_object(c, "/org/freedesktop/NetworkManager", info->interfaces[0],
                                      &vtable, NULL, NULL, NULL);
}

static void on_name(GDBusConnection *c, const gchar *name, gpointer data)
{
    (void)c, (void)name, (void)data;
    printf("ready\n");
    fflush(stdout);
}

static void on_lost(GDBusConnection *c, const gchar *name, gpointer data)
{
    (void)c, (void)data;
    fprintf(stderr, "fakenm: cannot own %s\n", name);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return fprintf(stderr, "usage: fakenm METERED (0-4)\n"), 2;
    metered = (guint32)strtoul(argv[1], NULL, 10);
    GDBusNodeInfo *info = g_dbus_node_info_new_for_xml(xml, NULL);
    g_bus_own_name(G_BUS_TYPE_SYSTEM, "org.freedesktop.NetworkManager", G_BUS_NAME_OWNER_FLAGS_NONE,
                   on_bus, on_name, on_lost, info, NULL);
    g_main_loop_run(g_main_loop_new(NULL, FALSE));
    return 0;
}
