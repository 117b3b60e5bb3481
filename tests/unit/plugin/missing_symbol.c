/* Test plugin: a shared object without the entry symbol (a typo in its
 * name, as a plugin author might make). */
int ringmq_plugin_entyr(void);

int ringmq_plugin_entyr(void)
{
    return 0;
}
